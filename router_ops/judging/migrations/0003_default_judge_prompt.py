"""The default pairwise rubric, version "pairwise-v1" (the text is frozen here: a rubric
version never changes once judgments cite it)."""

from django.db import migrations

RUBRIC_V1 = (
    "Please act as an impartial judge and compare the two answers to the user's question below. "
    "Consider correctness, completeness, helpfulness and whether the requested format is followed. "
    "Do not let the order of the answers, their length or style influence you. "
    "Explain briefly, then end your reply with one final line, exactly one of: "
    "'Verdict: A', 'Verdict: B', 'Verdict: tie'."
)



def create(apps, schema_editor):
    JudgePrompt = apps.get_model("judging", "JudgePrompt")
    JudgePrompt.objects.get_or_create(version="pairwise-v1", defaults={"text": RUBRIC_V1, "notes": "Default rubric"})



class Migration(migrations.Migration):
    dependencies = [("judging", "0002_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
