/// Lua run once in every new state: trims the standard library and installs `print`, `load`,
/// `collectgarbage` and `require` as the sandbox wants them.
enum LuaSandboxPrelude {
    static let source = #"""
local loaded, write, find_module = ...
local raw_load, raw_collectgarbage = load, collectgarbage
local error, select, tostring, type, setmetatable = error, select, tostring, type, setmetatable
local concat = table.concat

local function refuse(name, why)
  return function()
    error(name .. " is not available in the Vigil sandbox" .. (why or ""), 2)
  end
end

local function refusing_table(prefix, allowed, why)
  return setmetatable(allowed or {}, {
    __index = function(_, key)
      error(prefix .. "." .. tostring(key) .. " is not available in the Vigil sandbox" .. why, 2)
    end,
    __newindex = function(t, key, value) rawset(t, key, value) end,
    __metatable = false,
  })
end

-- A finalizer runs inside the collector with hooks off: a loop there would escape every limit.
local raw_setmetatable, rawget = setmetatable, rawget
_ENV.setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc finalizers are not available in the Vigil sandbox (they would run outside the script's limits)", 2)
  end
  return raw_setmetatable(t, mt)
end

dofile = refuse("dofile", " (scripts cannot read files; use require for modules in the rules folder)")
loadfile = refuse("loadfile", " (scripts cannot read files; use require for modules in the rules folder)")
string.dump = refuse("string.dump", " (binary chunks are never loaded)")

function load(chunk, chunkname, mode, ...)
  if mode ~= nil and mode ~= "t" then
    error("load: binary chunks are not allowed in the Vigil sandbox (mode '" .. tostring(mode) .. "' refused; use 't')", 2)
  end
  if select("#", ...) > 0 then return raw_load(chunk, chunkname, "t", ...) end
  return raw_load(chunk, chunkname, "t")
end

function collectgarbage(option)
  if option == nil or option == "count" then return raw_collectgarbage("count") end
  error("collectgarbage: only \"count\" is allowed in the Vigil sandbox", 2)
end

local os_time, os_clock, os_date = os.time, os.clock, os.date
os = refusing_table("os", { time = os_time, clock = os_clock, date = os_date },
  " (allowed: os.time, os.clock, os.date)")
loaded.os = os
io = refusing_table("io", nil, " (scripts have no file access)")
debug = refusing_table("debug", nil, " (no debug library in the sandbox)")
package = refusing_table("package", nil, " (modules load through require only)")

function print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  local refused = write(concat(parts, "\t"))
  if refused then error(refused, 2) end
end

function require(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
  end
  local module = loaded[name]
  if module ~= nil then return module end
  local source, chunkname = find_module(name)
  if source == nil then error(chunkname, 2) end
  local chunk, err = raw_load(source, chunkname, "t")
  if chunk == nil then error(err, 2) end
  module = chunk(name)
  if module == nil then module = true end
  loaded[name] = module
  return module
end
"""#
}
