---@meta
-- LuaCATS declarations of the `vigil` module for editors (lua-language-server). Documentation: README.md.

---@class VigilElement
---@field name string? metric name (absent after functions that drop it)
---@field labels table<string, string>
---@field value number

---@alias VigilVector VigilElement[]
---@alias VigilRange string|number a duration ("5m") or seconds
---@alias VigilGrouping { by: string[]? , without: string[]? }

---@class vigil
local vigil = {}

---Evaluation time in seconds since the epoch.
---@return number
function vigil.now() end

---@class vigil.query
vigil.query = {}

---@param selector string
---@return VigilVector
function vigil.query.last(selector) end
---@param selector string
---@return number?
function vigil.query.value(selector) end
---@param selector string
---@return table<string, string>[]
function vigil.query.series(selector) end
---@return string[]
function vigil.query.metric_names() end
---@param vector VigilVector
---@return number?
function vigil.query.scalar(vector) end

---@param selector string
---@param range VigilRange
---@return VigilVector
function vigil.query.avg_over_time(selector, range) end
---@return VigilVector
function vigil.query.min_over_time(selector, range) end
---@return VigilVector
function vigil.query.max_over_time(selector, range) end
---@return VigilVector
function vigil.query.sum_over_time(selector, range) end
---@return VigilVector
function vigil.query.count_over_time(selector, range) end
---@return VigilVector
function vigil.query.stddev_over_time(selector, range) end
---@return VigilVector
function vigil.query.stdvar_over_time(selector, range) end
---@return VigilVector
function vigil.query.last_over_time(selector, range) end
---@return VigilVector
function vigil.query.present_over_time(selector, range) end
---@return VigilVector
function vigil.query.rate(selector, range) end
---@return VigilVector
function vigil.query.increase(selector, range) end
---@return VigilVector
function vigil.query.delta(selector, range) end
---@return VigilVector
function vigil.query.deriv(selector, range) end
---@return VigilVector
function vigil.query.changes(selector, range) end
---@return VigilVector
function vigil.query.resets(selector, range) end
---@param q number
---@param selector string
---@param range VigilRange
---@return VigilVector
function vigil.query.quantile_over_time(q, selector, range) end
---@param selector string
---@param range VigilRange
---@param seconds number
---@return VigilVector
function vigil.query.predict_linear(selector, range, seconds) end

---@param vector VigilVector
---@param options VigilGrouping?
---@return VigilVector
function vigil.query.sum(vector, options) end
---@return VigilVector
function vigil.query.avg(vector, options) end
---@return VigilVector
function vigil.query.min(vector, options) end
---@return VigilVector
function vigil.query.max(vector, options) end
---@return VigilVector
function vigil.query.count(vector, options) end
---@return VigilVector
function vigil.query.stddev(vector, options) end
---@return VigilVector
function vigil.query.stdvar(vector, options) end
---@param k integer
---@param vector VigilVector
---@param options VigilGrouping?
---@return VigilVector
function vigil.query.topk(k, vector, options) end
---@return VigilVector
function vigil.query.bottomk(k, vector, options) end

return vigil
