import polib
from django.core.management import call_command


def test_japanese_catalogue_is_complete_and_compiles_without_gettext(tmp_path, settings):
    po_path = settings.BASE_DIR / "locale" / "ja" / "LC_MESSAGES" / "django.po"
    catalogue = polib.pofile(str(po_path))
    assert not catalogue.untranslated_entries()
    assert not [entry for entry in catalogue.fuzzy_entries() if not entry.obsolete]

    copy = tmp_path / "ja" / "LC_MESSAGES"
    copy.mkdir(parents=True)
    (copy / "django.po").write_bytes(po_path.read_bytes())
    settings.LOCALE_PATHS = [tmp_path]
    call_command("compile_translations", verbosity=0)
    compiled = polib.mofile(str(copy / "django.mo"))
    assert compiled.find("Log out").msgstr == "ログアウト"
