"""Graded labs on nbgrader: release assignments, hidden tests and autograding
(``make labs``, ``make grade``); see ``book/instructors.md``."""
