-- Schema 4 is another branch's (issue 18 work done in parallel): this
-- placeholder only keeps the numbering whole on the branch that adds 005.
-- At the merge the real 004 replaces it; a database is never left at 4
-- with this file alone in a release.
SELECT 1;
