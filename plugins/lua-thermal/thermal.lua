-- Temperatures of the kernel's thermal zones (node_exporter's node_thermal_zone_temp) and the
-- cooling devices' state. Hosts without thermal zones (most VMs) report nothing.
local vigil = require "vigil"

local function trim(s) return (s or ""):gsub("%s+$", "") end

vigil.collector "lua-thermal" {
  every = "5s",
  collect = function(emit)
    for _, zone in ipairs(vigil.glob("/sys/class/thermal/thermal_zone*")) do
      local millidegrees = tonumber(trim(vigil.read_file(zone .. "/temp")))
      if millidegrees then
        emit("node_thermal_zone_temp", millidegrees / 1000,
             { zone = zone:match("(%d+)$"), type = trim(vigil.read_file(zone .. "/type")) },
             "gauge", "Zone temperature in Celsius")
      end
    end
    for _, device in ipairs(vigil.glob("/sys/class/thermal/cooling_device*")) do
      local current = tonumber(trim(vigil.read_file(device .. "/cur_state")))
      local maximum = tonumber(trim(vigil.read_file(device .. "/max_state")))
      local labels = { name = device:match("(%d+)$"), type = trim(vigil.read_file(device .. "/type")) }
      if current then emit("node_cooling_device_cur_state", current, labels, "gauge", "Current throttle state of the cooling device") end
      if maximum then emit("node_cooling_device_max_state", maximum, labels, "gauge", "Maximum throttle state of the cooling device") end
    end
  end,
}
