"""Integrations with other frameworks, each an optional module that imports its framework only
when it is imported itself: ``smtp_proto.contrib.django`` (a Django email backend)."""
