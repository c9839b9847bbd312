from django.db import transaction
from rest_framework import permissions, serializers
from rest_framework.generics import ListCreateAPIView

from tachycore.manager import plugin_manager

from .models import Note


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "title", "body", "created", "word_count"]
        read_only_fields = ["word_count"]


class NoteList(ListCreateAPIView):
    """Anyone may read notes; signed-in users may add one, and a job counts its words."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]
    serializer_class = NoteSerializer

    def get_queryset(self):
        page_size = plugin_manager.plugins["notes"].options["page_size"]
        return Note.objects.all()[:page_size]

    def perform_create(self, serializer: NoteSerializer) -> None:
        from .jobs import enqueue_word_count

        # one transaction: the job exists if and only if the note does
        with transaction.atomic():
            enqueue_word_count(serializer.save())
