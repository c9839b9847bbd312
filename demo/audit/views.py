from rest_framework import permissions, serializers
from rest_framework.generics import ListAPIView

from .models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "plugin", "event", "created"]


class EventList(ListAPIView):
    """The latest audit events (staff only)."""

    permission_classes = [permissions.IsAdminUser]
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        return AuditEvent.objects.all()[:100]
