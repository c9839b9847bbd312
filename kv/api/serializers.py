"""Request bodies and responses of the key-value API."""

from __future__ import annotations

from rest_framework import serializers

from kv.validation import MAX_TTL
from tachycore.rest import QuerySerializer, WholeNumberField

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# -- requests ------------------------------------------------------------------------------


class KeyQuerySerializer(QuerySerializer):
    """Query string of ``GET /keys/``."""

    pattern = serializers.CharField(default="*", allow_blank=True, trim_whitespace=False,
                                    help_text="A Redis glob: *, ?, [abc], [^a], [a-z], \\ escapes; at most 256 "
                                              "characters and 16 wildcards.")
    limit = serializers.IntegerField(default=100, min_value=1, max_value=1000,
                                     help_text="The most keys to return (1 to 1000).")
    cursor = serializers.CharField(default="0", trim_whitespace=False,
                                   help_text="Where the page starts: 0 (the default) for the first page, "
                                             "else the `next` of the previous page, with the same pattern.")


class SetValueSerializer(serializers.Serializer):
    """Body of ``PUT /keys/<key>/``."""

    value = serializers.JSONField(allow_null=True, help_text="Any JSON value.")
    ttl = WholeNumberField(required=False, allow_null=True, min_value=1, max_value=MAX_TTL,
                           help_text="Seconds until the key expires; omitted or null: never.")


class IncrSerializer(serializers.Serializer):
    """Body of ``POST /keys/<key>/incr/``."""

    amount = WholeNumberField(default=1, min_value=INT64_MIN, max_value=INT64_MAX,
                              help_text="What to add (negative to subtract); 1 when omitted.")


class ExpireSerializer(serializers.Serializer):
    """Body of ``POST /keys/<key>/expire/``."""

    ttl = WholeNumberField(min_value=-MAX_TTL, max_value=MAX_TTL,
                           help_text="Seconds until the key expires; 0 or less deletes it now.")


class HashUpdateSerializer(serializers.Serializer):
    """Body of ``PATCH /keys/<key>/hash/``: the fields to set, others are kept."""

    # ignored: DRF's SerializerMetaclass pops declared fields off the class, so this one does
    # not shadow Serializer.fields; the stubs cannot say so (djangorestframework-stubs#78)
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.JSONField(allow_null=True), allow_empty=False,
        help_text="Field names and their JSON values.")

    # Never partial: the body is validated whole although it comes with PATCH (it sets fields
    # of a hash; it is no partial update of a resource). drf-spectacular marks PATCH bodies
    # partial to publish them with no required field; this keeps "fields" required.
    @property
    def partial(self) -> bool:
        return False

    @partial.setter
    def partial(self, value: bool) -> None:
        pass


# -- responses -----------------------------------------------------------------------------


class KeyListSerializer(serializers.Serializer):
    keys = serializers.ListField(child=serializers.CharField(), help_text="Live keys, sorted.")
    truncated = serializers.BooleanField(help_text="Whether more keys may match: `next` is not null.")
    next = serializers.CharField(allow_null=True,
                                 help_text="The `cursor` of the next page; null on the last page.")


class KeySerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.JSONField(allow_null=True, help_text="The value, or the fields of a hash.")
    type = serializers.ChoiceField(choices=["value", "hash"])
    ttl = serializers.IntegerField(help_text="Seconds left, rounded; -1 when the key never expires.")


class CounterSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.IntegerField(help_text="The value after the increment.")


class ExpirySerializer(serializers.Serializer):
    key = serializers.CharField()
    ttl = serializers.IntegerField(help_text="The TTL set, in seconds; -2 when the key was deleted.")


class HashSerializer(serializers.Serializer):
    key = serializers.CharField()
    # ignored: DRF's SerializerMetaclass pops declared fields off the class, so this one does
    # not shadow Serializer.fields; the stubs cannot say so (djangorestframework-stubs#78)
    fields = serializers.DictField(child=serializers.JSONField(allow_null=True))  # type: ignore[assignment]


class HashUpdatedSerializer(HashSerializer):
    added = serializers.IntegerField(help_text="How many of the fields are new.")
