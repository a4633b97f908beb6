from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("post/", views.post_tweet, name="post"),
    path("users/<str:username>/follow/", views.toggle_follow, name="follow"),
    path("export/", views.export_page, name="export"),
    path("export/csv/", views.export_csv, name="export-csv"),
    path("flood/", views.flood_page, name="flood"),
    path("flood/ping/", views.flood_ping, name="flood-ping"),
]
