"""Pure policies both sides must apply identically: business hours and the calendar, the leaky
bucket's parameters, and what is masked before anything is shown or stored."""
