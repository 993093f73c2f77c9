"""What a person runs, one folder per command, laid out as the stages are. Commands never
import each other, a stage, or the HTTP service."""
