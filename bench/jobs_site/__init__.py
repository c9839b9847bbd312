"""A bench-only site: the demo site plus the peers ``bench/jobs.py`` compares with.

Its app holds one no-op job and one job that reports when it starts, for each
system: ``jobs.py`` (our handlers), ``tasks.py`` (the ``django.tasks`` tasks run by
django-tasks-db and the django-q2 functions) and ``procrastinate_tasks.py``.
"""
