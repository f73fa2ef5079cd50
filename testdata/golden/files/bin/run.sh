#!/bin/sh
echo "kiln golden image"
