"""NS-Compliance: report templates, run certificates, audit-trail reports and reviews, validation packs."""
