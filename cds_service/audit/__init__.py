"""Silent-mode audit: the clinical core run over a FHIR Bulk Data export, one row per patient.

``ndjson`` reads export files, ``grouping`` gathers each patient's resources with bounded memory, ``bulk``
runs a ``$export`` against a FHIR server, ``evaluate`` asks the core what the card would have said at the
patient's index date, ``outputs`` writes patients.csv / patients.parquet, ``report`` the static HTML report,
``runner`` ties them together with a process pool and ``command`` is ``igg4-cds audit``.
"""
