ip -4 -o addr show | awk '{print $4}'
