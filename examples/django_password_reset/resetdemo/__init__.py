"""A minimal Django project whose password-reset mail goes out through smtpkit."""
