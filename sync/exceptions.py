"""Why an upload is refused; the API turns each into its status code."""


class DocumentRejected(Exception):
    """The upload cannot become a document; the message says why, for the user."""

    status_code = 400
    field = "file"


class DocumentTooLarge(DocumentRejected):
    status_code = 413

    def __init__(self, message: str, *, max_bytes: int) -> None:
        super().__init__(message)
        self.max_bytes = max_bytes


class UnsupportedDocumentType(DocumentRejected):
    status_code = 415


class UnreadableDocument(DocumentRejected):
    """Empty, corrupt, encrypted, not in the declared format, or without any text."""
