"""API for the other kinds of work: translations, images (with their file) and conversations."""

from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.fields import StrictCharField
from prompts.api.prompts import PromptAcceptedSerializer, prompt_accepted_response
from prompts.models import Conversation
from prompts.selectors import conversation_list, conversation_turns, prompt_request_list
from prompts.services import (
    LANGUAGES,
    MAX_TARGET_LANGUAGES,
    MAX_TEXTS,
    conversation_create,
    image_request_create,
    query_request_create,
    translation_request_create,
)
from users.models import User


class AcceptView(APIView):
    """POST: validate with `input_serializer`, accept through `service`, answer 202."""

    input_serializer: type[serializers.Serializer]

    @staticmethod
    def service(**fields: object) -> object:  # set by subclasses
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        incoming = self.input_serializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return prompt_accepted_response(request, type(self).service(user=request.user, **incoming.validated_data))


class LanguageField(StrictCharField):
    """An ISO 639-1 code, in lower case."""

    default_error_messages = {"unknown_language": "{value!r} is not an ISO 639-1 language code."}

    def to_internal_value(self, data: object) -> str:
        code = super().to_internal_value(data).lower()
        if code not in LANGUAGES:
            self.fail("unknown_language", value=code)
        return code


class TranslationCreateSerializer(serializers.Serializer):
    texts = serializers.ListField(
        child=StrictCharField(max_length=5000), min_length=1, max_length=MAX_TEXTS, help_text="Texts to translate."
    )
    source_lang = LanguageField(help_text="ISO 639-1 code of the texts' language.")
    target_langs = serializers.ListField(child=LanguageField(), min_length=1, max_length=MAX_TARGET_LANGUAGES)
    model = StrictCharField(required=False)

    def validate_target_langs(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each target language may appear once.")
        return value


class TranslationView(AcceptView):
    """Translate texts into several languages; the result maps each language to the texts, in order."""

    input_serializer = TranslationCreateSerializer
    service = staticmethod(translation_request_create)

    post = extend_schema(request=TranslationCreateSerializer, responses={202: PromptAcceptedSerializer})(
        AcceptView.post
    )


class QueryCreateSerializer(serializers.Serializer):
    question = StrictCharField(help_text="A question about your documents.")
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=50, help_text="How many excerpts to use.")


class QueryView(AcceptView):
    """Ask a question answered from your own documents (retrieval + chat).

    The answer lists the chunks it used. The same question over unchanged documents is answered
    from the query cache. On success your `query.completed` webhooks are called.
    """

    input_serializer = QueryCreateSerializer
    service = staticmethod(query_request_create)

    @extend_schema(request=QueryCreateSerializer, responses={202: PromptAcceptedSerializer})
    def post(self, request: Request) -> Response:
        return super().post(request)


class ImageCreateSerializer(serializers.Serializer):
    prompt = StrictCharField(help_text="What to draw.")
    size = serializers.ChoiceField(choices=settings.AI_IMAGE_SIZES, default=settings.AI_IMAGE_SIZES[0])
    steps = serializers.IntegerField(min_value=1, max_value=50, default=10, help_text="Progress steps.")


class ImageView(AcceptView):
    """Generate an image; the request's detail and its task show progress, then the image URL."""

    input_serializer = ImageCreateSerializer
    service = staticmethod(image_request_create)

    @extend_schema(request=ImageCreateSerializer, responses={202: PromptAcceptedSerializer})
    def post(self, request: Request) -> Response:
        return super().post(request)


class ImageFileView(APIView):
    """The generated PNG; only its owner (or staff) can fetch it, anyone else gets 404."""

    @extend_schema(responses={(200, "image/png"): bytes})
    def get(self, request: Request, pk: int) -> FileResponse:
        prompt = prompt_request_list(user=request.user).filter(pk=pk, kind="image").first()
        response = getattr(prompt, "response", None) if prompt else None
        if response is None or not response.file:
            raise NotFound("No such image.")
        return FileResponse(response.file.open("rb"), content_type="image/png")


class TurnSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    prompt_text = serializers.CharField()
    response_text = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_response_text(self, turn: object) -> str | None:
        response = getattr(turn, "response", None)
        return response.text if response else None


class ConversationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "title", "created_at", "updated_at", "archived_at"]
        read_only_fields = ["id", "created_at", "updated_at", "archived_at"]


class ConversationDetailSerializer(ConversationSerializer):
    turns = serializers.SerializerMethodField()

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "turns"]

    @extend_schema(responses=TurnSerializer(many=True))
    def get_turns(self, conversation: Conversation) -> list:
        return TurnSerializer(conversation_turns(conversation=conversation), many=True).data


class ConversationViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Your conversations. Send chat prompts with `conversation` set to continue one."""

    serializer_class = ConversationSerializer

    def get_queryset(self) -> QuerySet[Conversation]:
        if getattr(self, "swagger_fake_view", False):
            return Conversation.objects.none()
        return conversation_list(user=self.request.user)

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return ConversationDetailSerializer if self.action == "retrieve" else ConversationSerializer

    def perform_create(self, serializer: ConversationSerializer) -> None:
        user: User = self.request.user
        serializer.instance = conversation_create(user=user, title=serializer.validated_data.get("title", ""))
