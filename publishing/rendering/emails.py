"""The email of a version: subject, CSS-inlined HTML and plain text, holding placeholders for
the personal parts that ``EmailTemplate.personalize`` fills per recipient."""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass

import css_inline
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation

from publishing.rendering.converters import html_to_text
from publishing.rendering.markup import WHITESPACE, neutralise_placeholders
from publishing.rendering.source import Source, body_html

#: Placeholders for the per-recipient parts, filled by EmailTemplate.personalize.
NAME = "[[[name]]]"
PREFERENCES_URL = "[[[preferences_url]]]"
UNSUBSCRIBE_URL = "[[[unsubscribe_url]]]"
#: The reader's "more like this" / "less like this" links (decision 0080).
MORE_URL = "[[[more_url]]]"
LESS_URL = "[[[less_url]]]"
PLACEHOLDERS = (NAME, PREFERENCES_URL, UNSUBSCRIBE_URL, MORE_URL, LESS_URL)


@dataclass(frozen=True)
class EmailTemplate:
    """One version's email with placeholders; ``anonymous_html`` and ``anonymous_text`` are the
    same email greeting a subscriber without a name ("Hello," rather than "Hello ,"). They are
    None in a template built by hand, whose ``[[[name]]]`` then simply becomes empty."""

    subject: str
    html: str
    text: str
    anonymous_html: str | None = None
    anonymous_text: str | None = None

    def variant(self, name: str) -> tuple[str, str]:
        """(html, text) with placeholders for a recipient called ``name`` (blank: no name)."""
        if name.strip():
            return self.html, self.text
        return (
            self.html.replace(NAME, "") if self.anonymous_html is None else self.anonymous_html,
            self.text.replace(NAME, "") if self.anonymous_text is None else self.anonymous_text,
        )

    def personalize(
        self,
        *,
        name: str,
        preferences_url: str,
        unsubscribe_url: str,
        more_url: str = "#",
        less_url: str = "#",
    ) -> tuple[str, str]:
        """Return (html, text) with the recipient's parts filled in (HTML-escaped in the HTML).

        A blank name gets the greeting without a name ("Hello,"). Author content holds no
        placeholder (see ``neutralise_placeholders``), so only the template's own ones are
        replaced. ``more_url`` and ``less_url`` are the recipient's feedback links (previews
        and test sends, which have no subscriber, leave them "#").
        """
        name = name.strip()
        html, text = self.variant(name)
        values = {
            PREFERENCES_URL: preferences_url,
            UNSUBSCRIBE_URL: unsubscribe_url,
            MORE_URL: more_url,
            LESS_URL: less_url,
        }
        html = html.replace(NAME, html_lib.escape(name))
        text = text.replace(NAME, name)
        for placeholder, value in values.items():
            html = html.replace(placeholder, html_lib.escape(value))
            text = text.replace(placeholder, value)
        return html, text


def _without_name(rendered: str, named: str, anonymous: str) -> str:
    """``rendered`` greeting nobody by name: the translated "Hello [[[name]]]," becomes the
    translated "Hello,"; any other use of the placeholder becomes empty."""
    return rendered.replace(named, anonymous).replace(NAME, "")


_inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)


def build_email(source: Source) -> EmailTemplate:
    """Render the email templates in the version's language around its sanitised body."""
    html_body = body_html(source)
    title = neutralise_placeholders(source.title)
    summary = neutralise_placeholders(source.summary)
    context = {
        "title": title,
        "summary": summary,
        "body_html": html_body,
        "body_text": html_to_text(html_body),
        "url": source.url,
        "site_name": settings.SITE_NAME,
        "site_url": settings.SITE_URL,
        "language": source.language,
        "name": NAME,
        "preferences_url": PREFERENCES_URL,
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "more_url": MORE_URL,
        "less_url": LESS_URL,
        "title_rule": "=" * min(len(title), 72),
    }
    with translation.override(source.language):
        html = render_to_string("emails/publication.html", context)
        text = render_to_string("emails/publication.txt", context)
        # The templates' greeting, with and without a name (the same msgids as theirs).
        named = translation.gettext("Hello %(name)s,") % {"name": NAME}
        anonymous = translation.gettext("Hello,")
    # Subjects are one line: a newline would end the header.
    subject = WHITESPACE.sub(" ", title).strip()
    inlined = _inliner.inline(html)
    plain = text.strip() + "\n"
    return EmailTemplate(
        subject=subject,
        html=inlined,
        text=plain,
        anonymous_html=_without_name(inlined, named, html_lib.escape(anonymous)),
        anonymous_text=_without_name(plain, named, anonymous),
    )
