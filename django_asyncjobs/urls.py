from django.urls import path

from .offloading import views

app_name = "asyncjobs"

urlpatterns = [
    path("jobs/<uuid:job_id>/", views.job_status, name="status"),
    path("jobs/<uuid:job_id>/result/", views.job_result, name="result"),
]
