"""approve: a challenger that passed the gate while promotion required approval becomes the
champion."""
