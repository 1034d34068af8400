"""How text is cut into chunks."""

from sync.services.embedding import text_chunks


def test_paragraphs_are_packed_into_chunks_up_to_the_limit():
    text = "alpha beta\n\ngamma\n\n" + "delta " * 5

    assert text_chunks(text, max_chars=20) == ["alpha beta\n\ngamma", "delta delta delta", "delta delta"]


def test_a_long_word_is_cut_and_no_chunk_exceeds_the_limit():
    chunks = text_chunks("short " + "x" * 25 + " tail", max_chars=10)

    assert chunks == ["short", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx tail"]
    assert all(len(chunk) <= 10 for chunk in chunks)


def test_blank_text_has_no_chunks():
    assert text_chunks(" \n\n \n", max_chars=100) == []
