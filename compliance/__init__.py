"""Privacy compliance: consent, data-subject requests, retention, breaches, audit."""
