"""AI: intent detection, structured extraction and term interpretation behind one small interface."""
