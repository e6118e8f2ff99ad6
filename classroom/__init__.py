"""The teaching team's tools: student copies of the chapters and the grader.

Not part of the book's library ``utils`` (the wheel students install holds ``utils`` only).
Its one interface to the book is :data:`utils.checks.ALL_CHECKS`: each check's
:class:`utils.checks.Spec`, run in steps so that the verdict is computed where a student's code
cannot reach it.

- :mod:`classroom.student`: student copies and ``assignment.json``;
- :mod:`classroom.grade`: the grader's command line and :func:`classroom.grade.grade`, built from
  :mod:`classroom.assignment` (loading an assignment, the grader's seeds),
  :mod:`classroom.answers` (pulling the answers out of a submission),
  :mod:`classroom.sandbox` (the sandboxed fork server and its limits), :mod:`classroom.attempt`
  (what runs in the sandbox), :mod:`classroom.wire` (the only data that comes back),
  :mod:`classroom.scoring` (cases, references and verdicts) and :mod:`classroom.reports` (the
  CSV and feedback files).
"""
