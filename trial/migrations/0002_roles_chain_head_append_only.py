"""Role groups, the audit chain's head row, and (on PostgreSQL) a trigger that makes audit entries append-only."""

from django.db import migrations

ROLES = ["coordinator", "physician", "panel", "statistician", "data_manager"]

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION trial_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only (% refused on entry #%)', TG_OP, OLD.seq;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trial_auditentry_append_only
    BEFORE UPDATE OR DELETE ON trial_auditentry
    FOR EACH ROW EXECUTE FUNCTION trial_auditentry_append_only();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS trial_auditentry_append_only ON trial_auditentry;
DROP FUNCTION IF EXISTS trial_auditentry_append_only();
"""


def create_roles_and_head(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    Head = apps.get_model("trial", "AuditChainHead")
    Head.objects.get_or_create(pk=1, defaults={"last_seq": 0, "last_hash": "0" * 64})


def append_only_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("trial", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunPython(create_roles_and_head, migrations.RunPython.noop),
        migrations.RunPython(append_only_trigger, drop_trigger),
    ]
