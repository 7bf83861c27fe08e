"""The built-in driving simulator: procedural maps, traffic, risk scenarios, expert driver, closed loop."""
