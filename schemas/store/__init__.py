"""The job store in Redis: key names, the record and its state changes (atomic Lua scripts), the
client factory, the deployment secret and riding out a full Redis."""
