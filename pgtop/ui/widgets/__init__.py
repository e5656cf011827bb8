"""The dashboard's widgets, one public class per module."""
