"""Digests at each subscriber's hour (decision 0081): the digest schedule runs every quarter of an
hour (zones are offset from UTC by whole hours, half hours and quarter hours: Asia/Kolkata
+05:30, Asia/Kathmandu +05:45), and a daily task learns the hour each subscriber usually reads."""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone

DIGESTS = "channels.send_digests"
READ_HOURS = "channels.refresh_read_hours"


def next_quarter_hour():
    now = timezone.now().replace(second=0, microsecond=0)
    return now + timedelta(minutes=15 - now.minute % 15)


def every_quarter_hour(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=DIGESTS,
        defaults={
            "func": "channels.tasks.send_digests",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 15,
            "repeats": -1,
            # On the quarter hours, when the local hours of every zone begin.
            "next_run": next_quarter_hour(),
        },
    )
    Schedule.objects.update_or_create(
        name=READ_HOURS,
        defaults={
            "func": "channels.tasks.refresh_read_hours",
            "schedule_type": "D",  # Schedule.DAILY
            "repeats": -1,
            "next_run": (timezone.now() + timedelta(days=1)).replace(
                hour=3, minute=5, second=0, microsecond=0
            ),
        },
    )


def every_hour(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=READ_HOURS).delete()
    Schedule.objects.filter(name=DIGESTS).update(
        schedule_type="H",
        minutes=None,
        next_run=(timezone.now() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("channels", "0017_delivery_language"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(every_quarter_hour, every_hour)]
