local function check(value)
  if value > 1 then
    error("value too high: " .. value)
  end
end

check(5)
