from rest_framework import permissions, serializers
from rest_framework.generics import ListCreateAPIView

from tachycore.manager import plugin_manager

from .models import Note


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "title", "body", "created"]


class NoteList(ListCreateAPIView):
    """Anyone may read notes; signed-in users may add one."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]
    serializer_class = NoteSerializer

    def get_queryset(self):
        page_size = plugin_manager.plugins["notes"].options["page_size"]
        return Note.objects.all()[:page_size]
