"""A URLconf with an offloaded view but without django_asyncjobs.urls (asyncjobs.W003)."""

from django.urls import path

from tests.testapp import views

urlpatterns = [path("echo/<int:number>/", views.echo, name="echo")]
