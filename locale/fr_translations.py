# ruff: noqa: RUF001 (French typography uses the right single quotation mark)
"""French translations of the subscribers pages, applied to locale/fr/LC_MESSAGES/django.po.

Run after `manage.py makemessages -l fr ...` (see docs/subscribers.md), then compilemessages.
"""

from __future__ import annotations

import sys
from pathlib import Path

FR: dict[str, str | tuple[str, str]] = {
    # Digests at the reader's hour (decision 0081).
    "Let us pick: when I usually read our emails": (
        "Laissez-nous choisir : quand je lis d’habitude vos e-mails"
    ),
    "Digest time (daily and weekly digests)": "Heure des résumés (quotidiens et hebdomadaires)",
    "Choose an hour from 00:00 to 23:00, or let us pick.": (
        "Choisissez une heure de 00:00 à 23:00, ou laissez-nous choisir."
    ),
    "We send your digests at %(hour)s (%(zone)s), the hour you chose.": (
        "Nous envoyons vos résumés à %(hour)s (%(zone)s), l’heure que vous avez choisie."
    ),
    "We send your digests at %(hour)s (%(zone)s), when you usually read our emails.": (
        "Nous envoyons vos résumés à %(hour)s (%(zone)s), l’heure à laquelle vous lisez "
        "d’habitude nos e-mails."
    ),
    (
        "We send your digests at %(hour)s (%(zone)s). You asked us not to count opens and "
        "clicks, so we do not learn when you usually read: choose an hour if you prefer another."
    ): (
        "Nous envoyons vos résumés à %(hour)s (%(zone)s). Vous nous avez demandé de ne pas "
        "compter les ouvertures et les clics : nous n’apprenons donc pas quand vous lisez. "
        "Choisissez une heure si vous en préférez une autre."
    ),
    (
        "We send your digests at %(hour)s (%(zone)s). Once you have read a few of our emails, "
        "we send them at the hour you usually read."
    ): (
        "Nous envoyons vos résumés à %(hour)s (%(zone)s). Quand vous aurez lu quelques-uns de "
        "nos e-mails, nous les enverrons à l’heure à laquelle vous lisez d’habitude."
    ),
    "Weekly digests go out every %(weekday)s.": (
        "Les résumés hebdomadaires partent chaque %(weekday)s."
    ),
    "Not chosen: we pick it": "Non choisie : nous la choisissons",
    "Digest time": "Heure des résumés",
    "Usual reading hour": "Heure de lecture habituelle",
    # The email telling an event endpoint's owner it was disabled (decision 0084).
    "Your webhook endpoint was disabled: %(url)s": (
        "Votre point de réception de webhooks a été désactivé : %(url)s"
    ),
    (
        "The webhook endpoint %(url)s of %(site_name)s was disabled: every attempt to deliver "
        "an event to it has failed since %(since)s UTC, for more than %(days)s days."
    ): (
        "Le point de réception de webhooks %(url)s de %(site_name)s a été désactivé : chaque "
        "tentative de lui remettre un événement échoue depuis le %(since)s UTC, depuis plus "
        "de %(days)s jours."
    ),
    (
        "No events are sent to it while it is disabled. Once it answers again, enable it in "
        "the admin (Event webhook endpoints) or through the API, then replay the failed "
        "events since %(since)s UTC."
    ): (
        "Aucun événement ne lui est envoyé tant qu’il est désactivé. Dès qu’il répond de "
        "nouveau, réactivez-le dans l’administration (Event webhook endpoints) ou par l’API, "
        "puis rejouez les événements en échec depuis le %(since)s UTC."
    ),
    "Welcome to %(site_name)s": "Bienvenue sur %(site_name)s",
    "Your subscription is confirmed. You will receive:": (
        "Votre abonnement est confirmé. Vous recevrez :"
    ),
    (
        "You can change your topics, how often we write and the format of our emails at any "
        "time, or unsubscribe, from your preferences page:"
    ): (
        "Vous pouvez à tout moment changer vos sujets, la fréquence et le format de nos "
        "e-mails, ou vous désabonner, depuis votre page de préférences :"
    ),
    "Do not count whether I open your emails or click their links": (
        "Ne pas compter si j’ouvre vos e-mails ni si je clique sur leurs liens"
    ),
    "Opens and clicks": "Ouvertures et clics",
    (
        "Some of our emails count whether they are opened (a tiny image) and which links are "
        "clicked (links that pass through our site first), to learn what readers find useful."
        " Tick this box and your emails carry neither."
    ): (
        "Certains de nos e-mails comptent s’ils sont ouverts (une image minuscule) et quels "
        "liens sont cliqués (des liens qui passent d’abord par notre site), pour savoir ce "
        "qui intéresse nos lecteurs. Cochez cette case et vos e-mails ne contiendront ni "
        "l’une ni les autres."
    ),
    "Open and click counting": "Comptage des ouvertures et des clics",
    "Off: you opted out": "Désactivé : vous l’avez refusé",
    "On where a channel counts them": "Activé là où un canal les compte",
    (
        "Some of our emails count whether they are opened and which links are clicked; you "
        "can turn that off in your preferences."
    ): (
        "Certains de nos e-mails comptent s’ils sont ouverts et quels liens sont cliqués ; "
        "vous pouvez le désactiver dans vos préférences."
    ),
    "English": "Anglais",
    "French": "Français",
    "Email address": "Adresse e-mail",
    "Name (optional)": "Nom (facultatif)",
    "Topics": "Sujets",
    "Choose at least one topic.": "Choisissez au moins un sujet.",
    "Leave this field empty": "Laissez ce champ vide",
    "As soon as something is published": "Dès qu’une publication paraît",
    "Daily digest": "Résumé quotidien",
    "Weekly digest": "Résumé hebdomadaire",
    "Paused": "En pause",
    "HTML with a plain-text alternative": "HTML avec une version texte",
    "Plain text only": "Texte seul",
    "Name": "Nom",
    "How often": "Fréquence",
    "Paused until (leave empty to pause until you change it)": (
        "En pause jusqu’au (laissez vide pour une pause jusqu’à nouvel ordre)"
    ),
    "Email format": "Format des e-mails",
    "Language": "Langue",
    "Time zone": "Fuseau horaire",
    "Choose a date after today.": "Choisissez une date postérieure à aujourd’hui.",
    "A pause can last at most %(days)s days.": "Une pause dure au plus %(days)s jours.",
    "Too many requests": "Trop de demandes",
    "You have tried this too many times in a short while. Please wait a minute and try again.": (
        "Vous avez essayé trop de fois en peu de temps. Attendez une minute puis réessayez."
    ),
    "Confirm your subscription": "Confirmez votre abonnement",
    "Press the button to start receiving what you chose.": (
        "Appuyez sur le bouton pour commencer à recevoir ce que vous avez choisi."
    ),
    "Confirm my subscription": "Confirmer mon abonnement",
    "Subscription confirmed": "Abonnement confirmé",
    "You are subscribed": "Vous êtes abonné·e",
    "Thank you: your subscription is confirmed.": "Merci : votre abonnement est confirmé.",
    "Manage your preferences": "Gérer vos préférences",
    "Hello %(name)s,": "Bonjour %(name)s,",
    "Hello,": "Bonjour,",
    "Someone, probably you, tried to subscribe this address to %(site_name)s. It is already "
    "subscribed: nothing has changed. To choose what you receive, or to unsubscribe, use "
    "your preferences page:": (
        "Quelqu’un, sans doute vous, a voulu abonner cette adresse à %(site_name)s. Elle est "
        "déjà abonnée : rien n’a changé. Pour choisir ce que vous recevez, ou vous désabonner, "
        "utilisez votre page de préférences :"
    ),
    "You are already subscribed to %(site_name)s": "Vous êtes déjà abonné·e à %(site_name)s",
    "Someone, probably you, asked to subscribe this address to %(site_name)s. To confirm, "
    "open this link and press the button:": (
        "Quelqu’un, sans doute vous, a demandé à abonner cette adresse à %(site_name)s. Pour "
        "confirmer, ouvrez ce lien et appuyez sur le bouton :"
    ),
    "The link works for %(days)s day.": (
        "Le lien reste valable %(days)s jour.",
        "Le lien reste valable %(days)s jours.",
    ),
    "If you did not ask for this, ignore this message: nothing will be sent to you.": (
        "Si vous n’avez rien demandé, ignorez ce message : rien ne vous sera envoyé."
    ),
    "Confirm your subscription to %(site_name)s": "Confirmez votre abonnement à %(site_name)s",
    "Erase my data": "Effacer mes données",
    "This deletes your address, your name, your subscriptions and your consent history. It "
    "cannot be undone. Only a one-way fingerprint of your address stays, on our do-not-send "
    "list.": (
        "Cela supprime votre adresse, votre nom, vos abonnements et l’historique de vos "
        "consentements, sans retour possible. Seule une empreinte irréversible de votre adresse "
        "reste, sur notre liste des adresses à ne jamais contacter."
    ),
    "Erase everything": "Tout effacer",
    "Back to my preferences": "Retour à mes préférences",
    "Your data is erased": "Vos données sont effacées",
    "We no longer store your address or anything about you. We will not email you again.": (
        "Nous ne conservons plus votre adresse ni rien vous concernant. Nous ne vous écrirons plus."
    ),
    "This link has expired": "Ce lien a expiré",
    "This link is not valid": "Ce lien n’est pas valide",
    "Confirmation links work for %(days)s day.": (
        "Les liens de confirmation restent valables %(days)s jour.",
        "Les liens de confirmation restent valables %(days)s jours.",
    ),
    "Sign up again to receive a new one.": "Inscrivez-vous à nouveau pour en recevoir un autre.",
    "The link may have been cut or changed on its way, or it belongs to a subscription that "
    "no longer exists. Use the link from your most recent email, copied in full.": (
        "Le lien a peut-être été coupé ou modifié en chemin, ou il appartient à un abonnement "
        "qui n’existe plus. Utilisez le lien de votre e-mail le plus récent, copié en entier."
    ),
    "Go to the sign-up page": "Aller à la page d’inscription",
    "Your preferences": "Vos préférences",
    "For %(email)s": "Pour %(email)s",
    "Your preferences are saved.": "Vos préférences sont enregistrées.",
    "You are unsubscribed: we will not email you any more.": (
        "Vous êtes désabonné·e : nous ne vous écrirons plus."
    ),
    "You are subscribed again.": "Vous êtes de nouveau abonné·e.",
    "Your subscription is not confirmed yet: use the link in the confirmation email.": (
        "Votre abonnement n’est pas encore confirmé : utilisez le lien de l’e-mail de confirmation."
    ),
    "You are unsubscribed from everything.": "Vous êtes désabonné·e de tout.",
    "Subscribe again": "Me réabonner",
    "Save my preferences": "Enregistrer mes préférences",
    "Unsubscribe": "Se désabonner",
    "Unsubscribe from everything": "Me désabonner de tout",
    "What we store about you": "Ce que nous conservons sur vous",
    "Status": "Statut",
    "Signed up": "Inscription",
    "Confirmed": "Confirmation",
    "Subscriptions": "Abonnements",
    "paused until": "en pause jusqu’au",
    "Consent history": "Historique des consentements",
    "network": "réseau",
    "IP addresses are shortened before they are stored (the last part is dropped).": (
        "Les adresses IP sont raccourcies avant d’être conservées (la dernière partie est "
        "supprimée)."
    ),
    "Download my data (JSON)": "Télécharger mes données (JSON)",
    "Deletes everything we store about you. Only a one-way fingerprint of your address is "
    "kept, so that nobody can subscribe it again without your confirmation.": (
        "Supprime tout ce que nous conservons sur vous. Seule une empreinte irréversible de "
        "votre adresse est gardée, pour que personne ne puisse la réabonner sans votre "
        "confirmation."
    ),
    "Erase my data…": "Effacer mes données…",
    "Subscribe": "S’abonner",
    "Subscribe to %(site_name)s": "S’abonner à %(site_name)s",
    "Choose what you would like to receive. We will email you a link to confirm: nothing is "
    "sent before you use it.": (
        "Choisissez ce que vous souhaitez recevoir. Nous vous enverrons un lien de "
        "confirmation : rien n’est envoyé avant que vous l’utilisiez."
    ),
    "By subscribing you agree that we email you the topics you chose, at the frequency you "
    "choose, until you unsubscribe. Every email has a one-click unsubscribe link and a link "
    "to your preferences, where you can also see and erase what we store.": (
        "En vous abonnant, vous acceptez que nous vous envoyions les sujets choisis, à la "
        "fréquence choisie, jusqu’à votre désabonnement. Chaque e-mail contient un lien de "
        "désabonnement en un clic et un lien vers vos préférences, où vous pouvez aussi voir "
        "et effacer ce que nous conservons."
    ),
    "Check your inbox": "Consultez votre boîte de réception",
    "If this address can be subscribed, we have sent a message to it. Open the link inside "
    "to confirm your subscription; nothing is sent to you before that.": (
        "Si cette adresse peut être abonnée, nous lui avons envoyé un message. Ouvrez le lien "
        "qu’il contient pour confirmer votre abonnement ; rien ne vous est envoyé avant."
    ),
    "No message after a few minutes? Look in your spam folder, or sign up again later.": (
        "Pas de message après quelques minutes ? Regardez dans vos indésirables, ou "
        "réessayez plus tard."
    ),
    "Stop all emails to %(email)s?": "Ne plus rien envoyer à %(email)s ?",
    "Or change what you receive": "Ou modifier ce que vous recevez",
    "You are unsubscribed": "Vous êtes désabonné·e",
    "We will not email you any more.": "Nous ne vous écrirons plus.",
    "Changed your mind? Manage your preferences": "Changé d’avis ? Gérez vos préférences",
    "Skip to content": "Aller au contenu",
    "Site": "Site",
    "Archive": "Archives",
    "Every email has a link to unsubscribe in one click, and a link to your preferences.": (
        "Chaque e-mail contient un lien pour se désabonner en un clic et un lien vers vos "
        "préférences."
    ),
    "The latest from %(site_name)s, and a form to get it by email.": (
        "Les dernières publications de %(site_name)s, et un formulaire pour les recevoir par "
        "e-mail."
    ),
    "Latest publications": "Dernières publications",
    "Feeds:": "Flux :",
    "Everything %(site_name)s has published.": "Tout ce que %(site_name)s a publié.",
    "Nothing published yet.": "Rien n’a encore été publié.",
    "Pages": "Pages",
    "Newer": "Plus récentes",
    "Older": "Plus anciennes",
    "Page %(number)s of %(count)s": "Page %(number)s sur %(count)s",
    "All publications": "Toutes les publications",
    "Topic": "Sujet",
    "Please correct the following:": "Veuillez corriger ce qui suit :",
    "Stop every email from us. You can subscribe again from this page.": (
        "Ne plus rien recevoir de notre part. Vous pourrez vous réabonner depuis cette page."
    ),
    "Times are shown in your time zone, %(zone)s.": (
        "Les heures sont indiquées dans votre fuseau horaire, %(zone)s."
    ),
    "%(when)s, from %(source)s": "%(when)s, depuis %(source)s",
    "wording %(version)s": "texte %(version)s",
    "Waiting for your confirmation": "En attente de votre confirmation",
    "Active": "Actif",
    "Unsubscribed": "Désabonné·e",
    "Stopped: emails to this address bounced": (
        "Arrêté : les e-mails à cette adresse reviennent en erreur"
    ),
    "Stopped: an email was reported as spam": "Arrêté : un e-mail a été signalé comme spam",
    "Immediately": "Immédiatement",
    "Changed preferences": "Préférences modifiées",
    "Subscribed again": "Réabonnement",
    "Imported with consent": "Importé avec consentement",
    "Erased": "Effacé",
    "An email bounced": "Un e-mail est revenu en erreur",
    "An email was reported as spam": "Un e-mail a été signalé comme spam",
    "the sign-up form": "le formulaire d’inscription",
    "the website's sign-up service (API)": "le service d’inscription du site (API)",
    "an import by the team, with your earlier consent": (
        "un import par l’équipe, avec votre consentement antérieur"
    ),
    "the team": "l’équipe",
    "on this website": "sur ce site",
    "on this page": "sur cette page",
    "through the website's sign-up service": "par le service d’inscription du site",
    "by the team": "par l’équipe",
    "with your mail program's unsubscribe button": (
        "avec le bouton de désabonnement de votre messagerie"
    ),
    "on the unsubscribe page": "sur la page de désabonnement",
    "You receive this because someone asked to subscribe this address to %(site_name)s.": (
        "Vous recevez ce message parce que quelqu’un a demandé d’abonner cette adresse à "
        "%(site_name)s."
    ),
    # Reader feedback and digest reasons (decision 0080).
    "Want more or fewer publications like this one?": (
        "Vous voulez plus ou moins de publications comme celle-ci ?"
    ),
    "More like this": "Plus comme ceci",
    "Less like this": "Moins comme ceci",
    "You would like more publications like “%(title)s”.": (
        "Vous aimeriez plus de publications comme « %(title)s »."
    ),
    "You would like fewer publications like “%(title)s”.": (
        "Vous aimeriez moins de publications comme « %(title)s »."
    ),
    (
        "Your digests will put publications like it first or last accordingly. "
        "Nothing is recorded until you press the button."
    ): (
        "Vos résumés placeront les publications qui lui ressemblent en tête ou en fin"
        " en conséquence. Rien n’est enregistré avant que vous appuyiez sur le "
        "bouton."
    ),
    "Yes, more like this": "Oui, plus comme ceci",
    "Yes, less like this": "Oui, moins comme ceci",
    "Thank you": "Merci",
    "Noted: more publications like “%(title)s”.": (
        "C’est noté : plus de publications comme « %(title)s »."
    ),
    "Noted: fewer publications like “%(title)s”.": (
        "C’est noté : moins de publications comme « %(title)s »."
    ),
    (
        "Your next digests take it into account. Your preferences page, linked from "
        "every email, lists what you told us and lets you clear it."
    ): (
        "Vos prochains résumés en tiennent compte. Votre page de préférences, "
        "accessible depuis chaque e-mail, liste ce que vous nous avez dit et vous "
        "permet de l’effacer."
    ),
    "“More like this” and “less like this” links work for %(days)s day.": (
        "Les liens « Plus comme ceci » et « Moins comme ceci » restent valables %(days)s jour.",
        "Les liens « Plus comme ceci » et « Moins comme ceci » restent valables %(days)s jours.",
    ),
    "Nothing was recorded. Use the links of a more recent email.": (
        "Rien n’a été enregistré. Utilisez les liens d’un e-mail plus récent."
    ),
    "Nothing was recorded.": "Rien n’a été enregistré.",
    "What you told us about those publications is forgotten.": (
        "Ce que vous nous aviez dit de ces publications est oublié."
    ),
    "What you told us you like": "Ce que vous nous avez dit aimer",
    (
        "From the “more like this” and “less like this” links of our emails. Your "
        "digests put publications like the first ones first and like the others last."
    ): (
        "D’après les liens « Plus comme ceci » et « Moins comme ceci » de nos "
        "e-mails. Vos résumés placent en tête les publications qui ressemblent aux "
        "premières, et en fin celles qui ressemblent aux autres."
    ),
    "More like this:": "Plus comme ceci :",
    "Less like this:": "Moins comme ceci :",
    'Clear<span class="visually-hidden"> “%(title)s”</span>': (
        'Effacer<span class="visually-hidden"> « %(title)s »</span>'
    ),
    "Clear all of it": "Tout effacer",
    (
        "Nothing yet. Each email has “more like this” and “less like this” links: "
        "what you choose there is listed here, and you can clear it."
    ): (
        "Rien pour l’instant. Chaque e-mail contient des liens « Plus comme ceci » et"
        " « Moins comme ceci » : ce que vous y choisissez est listé ici, et vous "
        "pouvez l’effacer."
    ),
    "Because you follow %(topic)s": "Parce que vous suivez %(topic)s",
    "Like “%(title)s”, which you read": "Comme « %(title)s », que vous avez lu",
    "Like “%(title)s”, which you liked": "Comme « %(title)s », que vous avez aimé",
    "Recently published": "Publié récemment",
    # A translated publication's page (decision 0082).
    "This publication in other languages": "Cette publication dans d’autres langues",
    "Read in:": "Lire en :",
}


def _unquote(lines: list[str], keyword: str) -> str | None:
    text, active = [], False
    for line in lines:
        if line.startswith(keyword + " "):
            active = True
            text.append(line[len(keyword) + 1 :])
        elif active and line.startswith('"'):
            text.append(line)
        elif active:
            break
    if not active:
        return None
    return "".join(
        s[1:-1].encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
        for s in text
    )


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def apply(po_path: Path) -> list[str]:
    blocks = po_path.read_text(encoding="utf-8").split("\n\n")
    missing: list[str] = []
    out = []
    for index, block in enumerate(blocks):
        lines = block.strip("\n").splitlines()
        msgid = _unquote(lines, "msgid")
        if index == 0 or msgid is None or msgid == "":
            header = block.replace("; charset=CHARSET", "; charset=UTF-8")
            out.append(
                header.replace("#, fuzzy\n", "").replace('"Language: \\n"', '"Language: fr\\n"')
            )
            continue
        plural = _unquote(lines, "msgid_plural")
        translation = FR.get(msgid)
        if translation is None:
            missing.append(msgid)
            out.append(block)
            continue
        head = _head(lines)
        if isinstance(translation, tuple) and plural is not None:
            one, many = translation
            body = [*head, f"msgstr[0] {_quote(one)}", f"msgstr[1] {_quote(many)}"]
        elif isinstance(translation, str) and plural is None:
            body = [*head, f"msgstr {_quote(translation)}"]
        else:
            raise ValueError(f"singular and plural mixed up for {msgid!r}")
        out.append("\n".join(body))
    po_path.write_text("\n\n".join(out).rstrip("\n") + "\n", encoding="utf-8")
    return missing


def _head(lines: list[str]) -> list[str]:
    head = []
    for line in lines:
        if line.startswith("msgstr"):
            break
        if line.startswith("#, fuzzy"):
            continue
        head.append(line)
    return head


if __name__ == "__main__":
    path = Path(__file__).parent / "fr" / "LC_MESSAGES" / "django.po"
    not_done = apply(path)
    for msgid in not_done:
        sys.stderr.write(f"untranslated: {msgid!r}\n")
    sys.exit(1 if not_done else 0)
