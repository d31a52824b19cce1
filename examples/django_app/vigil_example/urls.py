from django.urls import path

from vigil_example import views

urlpatterns = [
    path("projects/", views.projects),
    path("projects/<int:project_id>/", views.project),
    path("projects/<int:project_id>/members/", views.members),
    path("healthz", views.healthz),
]
