from django.contrib import admin
from django.urls import include, path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("async/", include("django_asyncjobs.urls")),
    path("metrics/", include("django_asyncjobs.metrics.urls")),
    path("echo/<int:number>/", views.echo, name="echo"),
    path("atomic-writes/", views.atomic_writes, name="atomic-writes"),
    path("echo-async/", views.echo_async, name="echo-async"),
    path("tweet/", views.tweet, name="tweet"),
    path("maybe-cheap/", views.maybe_cheap, name="maybe-cheap"),
    path("login-outside/", views.login_outside, name="login-outside"),
    path("login-inside/", views.login_inside, name="login-inside"),
    path("needs-permission/", views.needs_permission, name="needs-permission"),
    path("report/", views.report_file, name="report"),
    path("uses-session/", views.uses_session, name="uses-session"),
    path("upload/plain/", views.plain_upload, name="plain-upload"),
    path("api/echo/", views.api_echo, name="api-echo"),
    path("client-page/", views.client_page, name="client-page"),
    path("async-login-inside/", views.async_login_inside, name="async-login-inside"),
    path("cbv/", views.class_based, name="cbv"),
    path("sets-cookie/", views.sets_cookie, name="sets-cookie"),
    path("writes-session/", views.writes_session, name="writes-session"),
    path("sets-private-cookies/", views.sets_private_cookies, name="sets-private-cookies"),
    path("promote/", views.promote, name="promote"),
    path("renders-form/", views.renders_form, name="renders-form"),
    path("form-target/", views.form_target, name="form-target"),
    path("upload-fails-once/", views.upload_fails_once, name="upload-fails-once"),
    path("enqueues-from-async/", views.enqueues_from_async, name="enqueues-from-async"),
]
