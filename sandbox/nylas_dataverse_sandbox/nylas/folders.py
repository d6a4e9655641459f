"""Folders and labels per provider, and which of them a message carries.

- Google: labels; system labels use their name as id (``INBOX``, ``SENT``, ``CATEGORY_PROMOTIONS``); a
  message carries several (``["UNREAD", "CATEGORY_PERSONAL", "INBOX"]``); archived mail has no ``INBOX``.
- Microsoft: opaque base64 folder ids, exactly one folder per message, and Nylas also syncs hidden
  system folders (``AUDITS`` is listed even without ``include_hidden_folders``, the documented
  "unexpected folder"; the other hidden ones only with it).
- IMAP: folder names are the ids; attributes carry IMAP's LIST flags next to the special-use one.

Roles used by the seed: ``inbox``, ``archive``, ``sent``, ``draft``, ``spam``, ``trash``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nylas_dataverse_sandbox.nylas import ids
from nylas_dataverse_sandbox.personas import GrantPersona


@dataclass(frozen=True)
class FolderSpec:
    name: str
    role: str | None = None
    attributes: tuple[str, ...] = ()
    system: bool = True
    hidden: bool = False
    parent: str | None = None
    colors: tuple[str, str] | None = None


_GOOGLE = (
    FolderSpec("INBOX", "inbox", ("\\Inbox",)),
    FolderSpec("SENT", "sent", ("\\Sent",)),
    FolderSpec("DRAFT", "draft", ("\\Drafts",)),
    FolderSpec("SPAM", "spam", ("\\Junk",)),
    FolderSpec("TRASH", "trash", ("\\Trash",)),
    FolderSpec("STARRED"),
    FolderSpec("IMPORTANT"),
    FolderSpec("UNREAD"),
    FolderSpec("CHAT"),
    FolderSpec("CATEGORY_PERSONAL"),
    FolderSpec("CATEGORY_SOCIAL"),
    FolderSpec("CATEGORY_PROMOTIONS"),
    FolderSpec("CATEGORY_UPDATES"),
    FolderSpec("CATEGORY_FORUMS"),
    FolderSpec("Customers", system=False, colors=("#16a765", "#ffffff")),
    FolderSpec("Customers/Fabrikam", system=False, colors=("#4986e7", "#ffffff")),
    FolderSpec("Receipts", system=False, colors=("#ffad47", "#000000")),
)
GOOGLE_USER_LABEL_IDS = {"Customers": "Label_1", "Customers/Fabrikam": "Label_2", "Receipts": "Label_3"}

_MICROSOFT = (
    FolderSpec("Inbox", "inbox", ("\\Inbox",)),
    FolderSpec("Newsletters", None, (), system=False, parent="Inbox"),
    FolderSpec("Sent Items", "sent", ("\\Sent",)),
    FolderSpec("Drafts", "draft", ("\\Drafts",)),
    FolderSpec("Junk Email", "spam", ("\\Junk",)),
    FolderSpec("Deleted Items", "trash", ("\\Trash",)),
    FolderSpec("Archive", "archive", ("\\Archive",)),
    FolderSpec("Outbox"),
    FolderSpec("Conversation History"),
    FolderSpec("AUDITS", hidden=False, parent="Recoverable Items"),
    FolderSpec("Recoverable Items", hidden=True),
    FolderSpec("DELETIONS", hidden=True, parent="Recoverable Items"),
    FolderSpec("PURGES", hidden=True, parent="Recoverable Items"),
    FolderSpec("VERSIONS", hidden=True, parent="Recoverable Items"),
)

_IMAP = (
    FolderSpec("INBOX", "inbox", ("\\HasNoChildren", "\\Inbox")),
    FolderSpec("Sent", "sent", ("\\HasNoChildren", "\\Sent")),
    FolderSpec("Drafts", "draft", ("\\HasNoChildren", "\\Drafts")),
    FolderSpec("Junk", "spam", ("\\HasNoChildren", "\\Junk")),
    FolderSpec("Trash", "trash", ("\\HasNoChildren", "\\Trash")),
    FolderSpec("Archive", "archive", ("\\HasNoChildren", "\\Archive")),
)

_CATALOGUE = {"google": _GOOGLE, "microsoft": _MICROSOFT, "imap": _IMAP}
_MS_ROOT = "msgfolderroot"


def catalogue(provider: str) -> tuple[FolderSpec, ...]:
    return _CATALOGUE[provider]


def folder_id(grant: GrantPersona, name: str) -> str:
    if grant.provider == "google":
        return GOOGLE_USER_LABEL_IDS.get(name, name)
    if grant.provider == "microsoft":
        return ids.microsoft_folder_id(grant.grant_id, name)
    return name


def role_folder_name(provider: str, role: str) -> str:
    for spec in catalogue(provider):
        if spec.role == role:
            return spec.name
    if provider == "google" and role == "archive":
        return "INBOX"  # only used for id hashing: archived Gmail mail simply lacks the INBOX label
    raise KeyError(f"{provider} has no folder for role {role!r}")


def message_folders(
    grant: GrantPersona,
    role: str,
    *,
    unread: bool,
    starred: bool,
    important: bool,
    category: str | None,
    user_label: str | None,
) -> list[str]:
    """The ``folders`` array of one message in ``grant``'s mailbox."""
    if grant.provider == "google":
        return _google_labels(role, unread, starred, important, category, user_label)
    if grant.provider == "microsoft" and role == "inbox" and category == "CATEGORY_PROMOTIONS":
        return [folder_id(grant, "Newsletters")]  # an inbox rule files newsletters
    return [folder_id(grant, role_folder_name(grant.provider, role))]


def _google_labels(
    role: str, unread: bool, starred: bool, important: bool, category: str | None, user_label: str | None
) -> list[str]:
    if role == "sent":
        return ["SENT", "IMPORTANT"] if important else ["SENT"]
    if role == "draft":
        return ["DRAFT"]
    if role == "spam":
        return ["SPAM", "UNREAD"] if unread else ["SPAM"]
    labels: list[str] = []
    if unread:
        labels.append("UNREAD")
    if important and role != "trash":
        labels.append("IMPORTANT")
    if starred and role != "trash":
        labels.append("STARRED")
    if category:
        labels.append(category)
    if role == "inbox":
        labels.append("INBOX")
    elif role == "trash":
        labels.append("TRASH")
    if user_label and role != "trash":
        labels.append(GOOGLE_USER_LABEL_IDS[user_label])
    return labels


def folder_objects(grant: GrantPersona, *, include_hidden: bool) -> list[dict[str, object]]:
    """The folder objects as ``GET /folders`` returns them, without counts."""
    specs = catalogue(grant.provider)
    objects: list[dict[str, object]] = []
    for spec in specs:
        if spec.hidden and not include_hidden:
            continue
        folder: dict[str, object] = {
            "id": folder_id(grant, spec.name),
            "grant_id": grant.grant_id,
            "name": spec.name,
            "object": "folder",
            "attributes": list(spec.attributes),
        }
        if grant.provider == "google":
            folder["system_folder"] = spec.system
            if spec.colors:
                folder["background_color"], folder["text_color"] = spec.colors
        elif grant.provider == "microsoft":
            parent = spec.parent or _MS_ROOT
            folder["parent_id"] = ids.microsoft_folder_id(grant.grant_id, parent)
            folder["child_count"] = sum(1 for other in specs if other.parent == spec.name)
        objects.append(folder)
    return objects
