"""Change detection: a document marked as changed keeps its expansion only if its text is the same."""

from __future__ import annotations

from worker.expansion.changes import is_marked_changed, restore_unchanged
from worker.expansion.document import Expansion, source_hash

TEXT = "El río Ebro pasa por Zaragoza."
FINGERPRINT = "f" * 20


def marked(**changes):
    expansion = Expansion(
        model="tiny",
        fingerprint=FINGERPRINT,
        status="expanded",
        source_hash=source_hash(TEXT),
        queries=["dónde está zaragoza"],
        query_paragraph=[0],
        terms={"zaragoza": 1.0},
        paragraphs=1,
    ).to_source()
    expansion.update(status="changed", changed_from="expanded")
    expansion.update(changes)
    return expansion


def test_same_text_restores_old_status():
    restored = restore_unchanged(marked(), TEXT, FINGERPRINT)

    assert restored is not None
    assert restored.status == "expanded"
    assert restored.queries == ["dónde está zaragoza"]
    assert restored.terms == {"zaragoza": 1.0}
    assert "changed_from" not in restored.to_source()


def test_skipped_document_restored_as_skipped():
    restored = restore_unchanged(marked(changed_from="skipped"), TEXT, FINGERPRINT)

    assert restored is not None
    assert restored.status == "skipped"


def test_edited_text_needs_new_expansion():
    assert restore_unchanged(marked(), TEXT + " Y por Logroño.", FINGERPRINT) is None


def test_other_fingerprint_needs_new_expansion():
    assert restore_unchanged(marked(), TEXT, "other") is None


def test_failed_before_mark_needs_new_expansion():
    assert restore_unchanged(marked(changed_from="failed"), TEXT, FINGERPRINT) is None


def test_unmarked_expansion_not_restored():
    expansion = marked(status="expanded")

    assert restore_unchanged(expansion, TEXT, FINGERPRINT) is None


def test_missing_hash_needs_new_expansion():
    assert restore_unchanged(marked(source_hash=None), TEXT, FINGERPRINT) is None


def test_object_without_model_needs_new_expansion():
    expansion = marked()
    del expansion["model"]

    assert restore_unchanged(expansion, TEXT, FINGERPRINT) is None


def test_malformed_expansions_not_marked():
    assert not is_marked_changed(None)
    assert not is_marked_changed("changed")
    assert not is_marked_changed(["changed"])
    assert is_marked_changed({"status": "changed"})


def test_verify_marks_edited_text():
    from worker.cluster.reader import SourceDocument
    from worker.verify import marked_expansion

    document = SourceDocument(
        "news",
        "1",
        3,
        1,
        {"text": TEXT + " Editado.", "doc2query": marked(status="expanded")},
    )

    expansion = marked_expansion(document, "doc2query", ["text"])

    assert expansion is not None
    assert expansion["status"] == "changed"
    assert expansion["changed_from"] == "expanded"
    assert expansion["queries"] == ["dónde está zaragoza"]


def test_verify_leaves_same_text():
    from worker.cluster.reader import SourceDocument
    from worker.verify import marked_expansion

    document = SourceDocument(
        "news", "1", 3, 1, {"text": TEXT, "doc2query": marked(status="expanded")}
    )

    assert marked_expansion(document, "doc2query", ["text"]) is None


def test_verify_marks_skipped_document_with_new_text():
    from worker.cluster.reader import SourceDocument
    from worker.verify import marked_expansion

    skipped = {"status": "skipped", "source_hash": None, "fingerprint": FINGERPRINT}
    document = SourceDocument("news", "1", 3, 1, {"text": TEXT, "doc2query": skipped})

    expansion = marked_expansion(document, "doc2query", ["text"])

    assert expansion is not None
    assert expansion["changed_from"] == "skipped"
