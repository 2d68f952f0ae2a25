"""Integrations of Puff with third-party frameworks (``puff.contrib.django``)."""
