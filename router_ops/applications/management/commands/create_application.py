from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug

from router_ops.applications.services import application_create


class Command(BaseCommand):
    help = "Create an application (idempotent: an existing one is left as it is)."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="e.g. support-bot")
        parser.add_argument("--name", default="", help="display name")

    def handle(self, *args, slug, name, **options):
        try:
            validate_slug(slug)
        except ValidationError:
            raise CommandError(
                f"{slug!r} is not a valid slug: use letters, numbers, hyphens and underscores."
            ) from None
        if len(slug) > 64:
            raise CommandError("The slug may have at most 64 characters.")
        app, created = application_create(slug=slug, name=name)
        self.stdout.write(f"{'created' if created else 'exists'}: {app.slug}")
