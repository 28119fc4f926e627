"""Digests (decision 0025): the Digest record, the delivery kind, and the hourly schedule."""

import django.db.models.deletion
from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone


DIGESTS = "channels.send_digests"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=DIGESTS,
        defaults={
            "func": "channels.tasks.send_digests",
            "schedule_type": "H",  # Schedule.HOURLY
            "repeats": -1,
            # On the hour, so a digest goes out within minutes of DIGEST_HOUR.
            "next_run": (timezone.now() + timedelta(hours=1)).replace(
                minute=0, second=0, microsecond=0
            ),
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=DIGESTS).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('channels', '0006_delivery_provider_message_id_index'),
        ('publishing', '0004_api_keys'),
        ('subscribers', '0002_email_hash_indexes'),
        ('django_q', '0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more'),
    ]

    operations = [
        migrations.AlterField(
            model_name='delivery',
            name='kind',
            field=models.CharField(choices=[('subscriber', 'To a subscriber'), ('broadcast', 'To a broadcast channel'), ('transactional', 'Site mail (confirmation, test send)'), ('digest', "A subscriber's daily or weekly digest")], default='subscriber', max_length=20),
        ),
        migrations.CreateModel(
            name='Digest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('frequency', models.CharField(choices=[('daily', 'Daily'), ('weekly', 'Weekly')], max_length=10)),
                ('period_start', models.DateTimeField()),
                ('period_end', models.DateTimeField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('delivery', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='digest', to='channels.delivery')),
                ('publications', models.ManyToManyField(blank=True, related_name='digests', to='publishing.publication')),
                ('subscriber', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='digests', to='subscribers.subscriber')),
            ],
            options={
                'ordering': ['-period_end', '-pk'],
                'constraints': [models.UniqueConstraint(fields=('subscriber', 'frequency', 'period_end'), name='one_digest_per_period')],
            },
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
