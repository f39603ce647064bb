"""Number each run's journal 1, 2, 3, … (``InstanceEvent.seq``); existing rows in id order.

New rows are numbered by a database trigger that apps/workflows/journal.py installs after every migrate.
"""

from django.db import migrations, models
import django.db.models.deletion

import apps.workflows.models

COUNTER = "workflows_journalcounter"
EVENTS = "workflows_instanceevent"

NUMBER_EXISTING = [
    f"""UPDATE {EVENTS} SET seq = n.rn FROM (
          SELECT id, ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY id) AS rn FROM {EVENTS}
        ) AS n WHERE {EVENTS}.id = n.id""",
    f"INSERT INTO {COUNTER} (instance_id, last_seq) SELECT instance_id, MAX(seq) FROM {EVENTS} GROUP BY instance_id",
]


def number_existing(apps, schema_editor):
    cursor = schema_editor.connection.cursor()
    for sql in NUMBER_EXISTING:
        cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0003_noderun_held_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="JournalCounter",
            fields=[
                (
                    "instance",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="journal_counter",
                        serialize=False,
                        to="workflows.workflowinstance",
                    ),
                ),
                ("last_seq", models.PositiveBigIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name="instanceevent",
            name="seq",
            field=apps.workflows.models.JournalSeqField(editable=False, null=True),
        ),
        migrations.RunPython(number_existing, migrations.RunPython.noop),
        migrations.AlterModelOptions(name="instanceevent", options={"ordering": ["instance", "seq"]}),
        migrations.RemoveIndex(model_name="instanceevent", name="event_instance_seq"),
        migrations.AddConstraint(
            model_name="instanceevent",
            constraint=models.UniqueConstraint(fields=("instance", "seq"), name="event_instance_seq_unique"),
        ),
    ]
