while [ $# -ge 5 ]; do
  t=$1 p=$2 m=$3 o=$4 g=$5
  shift 5
  if [ "$t" = - ]; then
    chown -- "$o:$g" "$p" && chmod -- "$m" "$p" || exit 1
  else
    chown -- "$o:$g" "$t" && chmod -- "$m" "$t" && mv -f -- "$t" "$p" || exit 1
  fi
done
