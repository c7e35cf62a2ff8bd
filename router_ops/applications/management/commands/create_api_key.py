from django.core.management.base import BaseCommand, CommandError

from router_ops.applications.models import ApiKey, Application
from router_ops.applications.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an application. The key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--scopes", default="ingest", help=f"comma-separated subset of {','.join(ApiKey.SCOPES)}")
        parser.add_argument("--name", default="", help="a label to recognise the key by")

    def handle(self, *args, slug, scopes, name, **options):
        application = Application.objects.filter(slug=slug).first()
        if application is None:
            raise CommandError(f"No application {slug!r}; create it with: manage.py create_application {slug}")
        requested = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            api_key, plaintext = api_key_create(application=application, scopes=requested, name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"API key ro_{api_key.prefix}_… for {slug}, scopes {','.join(api_key.scopes)}. Shown once:")
        self.stdout.write(plaintext)
