"""The database itself refuses UPDATE and DELETE on audit rows (DESIGN.md §6, STYLE.md rule 10).

A row-level BEFORE trigger raises, so neither the ORM, raw SQL, nor a cascade can
change history. TRUNCATE is deliberately not trapped: test runners flush tables
with it, and only the table owner may run it; production should additionally
REVOKE UPDATE, DELETE, TRUNCATE ON rollouts_auditevent FROM the application role.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION rollouts_auditevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rollouts_auditevent is append-only: % refused', TG_OP
        USING HINT = 'Audit events record history; write a new event instead.';
END;
$$;

CREATE TRIGGER rollouts_auditevent_append_only
BEFORE UPDATE OR DELETE ON rollouts_auditevent
FOR EACH ROW EXECUTE FUNCTION rollouts_auditevent_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS rollouts_auditevent_append_only ON rollouts_auditevent;
DROP FUNCTION IF EXISTS rollouts_auditevent_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("rollouts", "0002_rollouts_approvals_audit")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
