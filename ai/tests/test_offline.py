"""The offline provider: real output with no network, marked as offline."""

import zlib

from ai.providers import OfflineProvider, ProviderError, translation_parse


def test_offline_image_is_a_real_png_drawn_in_visible_steps(settings):
    settings.AI_OFFLINE_IMAGE_STEP_SECONDS = 0
    seen: list[float] = []

    image = OfflineProvider().image("a lighthouse", size="64x32", steps=4, on_progress=seen.append)

    assert image.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.png[16:24] == (64).to_bytes(4, "big") + (32).to_bytes(4, "big")
    idat = image.png.index(b"IDAT")
    length = int.from_bytes(image.png[idat - 4 : idat], "big")
    assert len(zlib.decompress(image.png[idat + 4 : idat + 4 + length])) == 32 * (1 + 64 * 3)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert image.provider == "offline"


def test_offline_translation_keeps_order_and_says_the_language():
    result = OfflineProvider().translate(["one", "two"], source="en", target="de", model="any")

    assert result.texts == ["[de] one", "[de] two"]
    assert result.provider == "offline"


def test_a_translation_answer_of_the_wrong_shape_is_a_readable_error():
    assert translation_parse('```json\n["a", "b"]\n```', 2) == ["a", "b"]
    for bad in ['["only one"]', "not json", '{"a": 1}', "[1, 2]"]:
        try:
            translation_parse(bad, 2)
        except ProviderError as exc:
            assert "expected a JSON array of 2 strings" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
