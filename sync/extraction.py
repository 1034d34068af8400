"""From an uploaded file to text: plain text, Markdown, HTML (the stdlib's parser), PDF (pypdf)."""

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from django.core.files.uploadedfile import UploadedFile

from sync.exceptions import DocumentTooLarge, UnreadableDocument, UnsupportedDocumentType

SUPPORTED_TYPES = {
    "text/plain": "plain text",
    "text/markdown": "Markdown",
    "text/html": "HTML",
    "application/pdf": "PDF",
}
TYPE_ALIASES = {
    "text/x-markdown": "text/markdown",
    "application/xhtml+xml": "text/html",
    "application/x-pdf": "application/pdf",
}
TYPES_BY_EXTENSION = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
# What browsers and curl declare when they do not know; the file name decides then.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


@dataclass(frozen=True)
class ExtractedFile:
    text: str
    file_name: str
    content_type: str
    size_bytes: int


def size_check(*, size_bytes: int, max_bytes: int, tier_name: str, what: str = "The document") -> None:
    """Refuse more than the tier's limit, with both numbers in the message."""
    if size_bytes > max_bytes:
        raise DocumentTooLarge(
            f"{what} is {size_bytes:,} bytes; the {tier_name} tier allows at most {max_bytes:,} bytes.",
            max_bytes=max_bytes,
        )


def document_type(*, file_name: str, declared: str) -> str:
    """The supported type of an upload: its declared type, or its extension when that says nothing."""
    declared = (declared or "").split(";")[0].strip().lower()
    declared = TYPE_ALIASES.get(declared, declared)
    if declared in SUPPORTED_TYPES:
        return declared
    by_extension = TYPES_BY_EXTENSION.get(PurePath(file_name).suffix.lower())
    if by_extension and (declared in GENERIC_TYPES or declared.startswith("text/")):
        return by_extension
    raise UnsupportedDocumentType(
        f"Unsupported file type {declared or 'unknown'!r} ({file_name}); "
        f"upload {', '.join(SUPPORTED_TYPES.values())} (.txt, .md, .html, .pdf)."
    )


def file_text(upload: UploadedFile, *, max_bytes: int, tier_name: str) -> ExtractedFile:
    """The text of an uploaded file, checking size before reading it and refusing what has no text."""
    file_name = PurePath(upload.name or "upload").name
    size_check(size_bytes=upload.size or 0, max_bytes=max_bytes, tier_name=tier_name, what="The file")
    content_type = document_type(file_name=file_name, declared=upload.content_type or "")
    if not upload.size:
        raise UnreadableDocument("The file is empty.")
    data = upload.read()
    if content_type == "application/pdf":
        text = _pdf_text(data)
    else:
        text = _decoded(data, charset=upload.charset)
        if content_type == "text/html":
            text = _html_text(text)
    text = normalise_text(text)
    if not text:
        hint = " (a scanned PDF without a text layer?)" if content_type == "application/pdf" else ""
        raise UnreadableDocument(f"No text was found in the file{hint}.")
    return ExtractedFile(text=text, file_name=file_name, content_type=content_type, size_bytes=len(data))


def normalise_text(text: str) -> str:
    """One line-ending style, no trailing spaces, at most one blank line in a row, no outer blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _decoded(data: bytes, *, charset: str | None) -> str:
    # A UTF-16 byte order mark wins over what the client declared; UTF-8 (with or without BOM) otherwise.
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else charset or "utf-8-sig"
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise UnreadableDocument(f"The file is not readable as {charset or 'UTF-8'} text.") from None
    if "\x00" in text:
        raise UnreadableDocument("The file contains NUL bytes; it looks binary, not text.")
    return text


class _HTMLText(HTMLParser):
    """Collects the visible text of an HTML page, one paragraph per block element."""

    SKIPPED = {"script", "style", "noscript", "template", "svg"}
    BLOCKS = {
        *("p", "div", "br", "hr", "li", "dt", "dd", "tr", "td", "th", "title", "pre", "blockquote"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer", "table"),
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def _html_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "\n".join(line.strip() for line in "".join(parser.parts).split("\n"))


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    if b"%PDF-" not in data[:1024]:
        raise UnreadableDocument("The file is not a PDF (it has no %PDF header).")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("The PDF is protected by a password.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableDocument:
        raise
    except Exception as exc:  # pypdf raises many kinds (PdfReadError, ValueError, KeyError, ...) on damage
        raise UnreadableDocument(f"The PDF could not be read: {exc or type(exc).__name__}") from None
    return "\n\n".join(pages).replace("\x00", "")
