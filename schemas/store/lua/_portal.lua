-- job_portal(record): the portal of the job in ``record``, or nil (a record made from input that
-- never became a job has none).
local function job_portal(record)
  -- a job's own fields (CallbackJob.to_fields: the portal is ``p``), or its JSON (records of up to 0.3,
  -- and those final on arrival)
  local short = redis.call('HGET', record, 'p')
  if short and short ~= '' then return short end
  local raw = redis.call('HGET', record, 'job')
  if not raw or raw == 'null' then return nil end
  local job = cjson.decode(raw)
  if type(job) == 'table' and type(job.portal) == 'string' and job.portal ~= '' then return job.portal end
  return nil
end
