"""The job queue, which is arq: the only code that imports arq or knows its keys, its stored-job
format or its ``Worker``'s attributes. Everything else sees callq's own names."""
