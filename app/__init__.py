"""The application: ``create_app()`` builds one; call it as often as you like (one AppBuilder per
app). Kept import-light so ``python -m app...`` helpers work before the app is configured."""


def create_app(config_overrides=None):
    from app.factory import create_app as _create_app

    return _create_app(config_overrides)


__all__ = ["create_app"]
