"""Helpers for the sync tests: files to upload, waiting for documents."""

from typing import Any

from conftest import wait_until


def make_pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF whose text layer holds `lines` (Helvetica, no dependencies)."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({escape(line)}) Tj 0 -16 Td" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        "/Contents 4 0 R >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def wait_document(client: Any, document_id: int, *, statuses: tuple[str, ...] = ("EMBEDDED", "FAILED")) -> dict:
    """Poll a document's detail until its status is one of `statuses`."""

    def settled() -> dict | None:
        body = client.get(f"/api/v1/documents/{document_id}/").json()
        return body if body.get("status") in statuses else None

    return wait_until(settled, timeout=30, what=f"document {document_id} to reach {statuses}")
