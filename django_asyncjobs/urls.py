from django.urls import path

from .offloading import groups, views

app_name = "asyncjobs"

urlpatterns = [
    path("jobs/<uuid:job_id>/", views.job_status, name="status"),
    path("jobs/<uuid:job_id>/result/", views.job_result, name="result"),
    path("groups/<uuid:group_id>/", groups.group_status, name="group_status"),
]
