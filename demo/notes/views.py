from django.db import models, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import permissions, serializers
from rest_framework.generics import ListCreateAPIView

from tachycore.manager import plugin_manager
from tachycore.parsers import JSONBodyParser
from tachycore.rest import StringField

from .models import Note


class NoteSerializer(serializers.ModelSerializer):
    # the title and body as JSON strings: DRF's CharField would store 226 as "226"
    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping,
                                models.CharField: StringField, models.TextField: StringField}

    class Meta:
        model = Note
        fields = ["id", "title", "body", "created", "word_count"]
        read_only_fields = ["word_count"]


#: DRF's own error bodies: each field's messages, or "detail" for a body that is not JSON
BAD_NOTE = OpenApiResponse(OpenApiTypes.OBJECT, description='{"title": ["This field may not be blank."]} '
                                                            'or {"detail": "JSON parse error - ..."}')
REFUSED = OpenApiResponse(OpenApiTypes.OBJECT, description='{"detail": "Authentication credentials were not provided."}')


@extend_schema_view(post=extend_schema(responses={201: NoteSerializer, 400: BAD_NOTE, 403: REFUSED}))
class NoteList(ListCreateAPIView):
    """Anyone may read notes; signed-in users may add one, and a job counts its words."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]
    # JSON bodies only, as the schema says: a form would turn every value into text
    parser_classes = [JSONBodyParser]
    serializer_class = NoteSerializer

    def get_queryset(self):
        page_size = plugin_manager.plugins["notes"].options["page_size"]
        return Note.objects.all()[:page_size]

    def perform_create(self, serializer: NoteSerializer) -> None:
        from .jobs import enqueue_word_count

        # one transaction: the job exists if and only if the note does
        with transaction.atomic():
            enqueue_word_count(serializer.save())
