"""The HTTP way in, ``callq serve``: routes (:mod:`.app`), request guards (:mod:`.guards`),
health and readiness (:mod:`.ready`) and the server below the application (:mod:`.server`)."""
