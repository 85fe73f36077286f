"""The tutorials' regression example: networks, data, closed form, conditioning, the weights report.

Replace it with yours."""
